//! One profiling session's own thread: it starts the CPU sampler and heap sampling, ticks
//! once a second (heap timeline, sampler drain) until it is stopped or its `seconds` run out,
//! then builds and writes every artifact atomically and completes the session for whoever
//! waits in `Profiler::stop`.
//!
//! Everything it allocates is the profiler's (`alloc::ProfilerScope`). Must not be reached
//! from a request worker except through `Profiler`, and must never leave a waiter hanging: a
//! panic while writing still completes the session, as `failed`.

use super::*;

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// Its `seconds` ran out.
    Completed,
    /// Someone stopped it (`stop`, cleanup, the monitor, shutdown).
    Stopped,
}

/// A session's state as the old service named it in every `/debug/profiling/*` body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    Running,
    Stopped,
    Completed,
    /// The session or one of its artifacts failed (the errors say which).
    Failed,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Running => "running",
            SessionState::Stopped => "stopped",
            SessionState::Completed => "completed",
            SessionState::Failed => "failed",
        }
    }
}

/// Everything one session thread owns.
pub(super) struct Session {
    pub(super) inner: Arc<Inner>,
    pub(super) request: SessionRequest,
    pub(super) info: SessionInfo,
    pub(super) completion: Arc<Completion>,
}

/// What the collection phase hands to the writing phase.
struct Collected {
    cpu: Option<Result<CpuProfile, ProfilingError>>,
    sampler: SamplerStats,
    heap: Option<HeapProfile>,
    extra: Vec<(String, String)>,
    ended: SystemTime,
    ending: SessionEnd,
}

impl Session {
    pub(super) fn run(
        self,
        commands: Receiver<Command>,
        ready: Sender<Result<(), ProfilingError>>,
    ) {
        // Everything this thread allocates is the profiler's: sample tables, symbol data,
        // reports, the finished session kept in the history.
        let _scope = alloc::ProfilerScope::enter();
        alloc::reset_profiler_peak();
        let kind = self.request.kind;
        let mut cpu = if kind.has_cpu() {
            match CpuCollector::start(self.inner.settings.cpu_hz) {
                Ok(collector) => Some(collector),
                Err(err) => {
                    let _ = ready.send(Err(err));
                    return;
                }
            }
        } else {
            None
        };
        let mut timeline = Timeline::default();
        let began = Instant::now();
        let heap_origin = if kind.has_heap() {
            let stats_at_start = alloc::heap_stats();
            alloc::start_sampling(self.inner.settings.heap_sample_rate);
            timeline.record(Duration::ZERO);
            Some(stats_at_start)
        } else {
            None
        };
        if let Some(stats_at_start) = heap_origin {
            lock(&self.inner.state).heap_sites_from = Some(HeapOrigin {
                started: self.info.started,
                stats_at_start,
                end: None,
                timeline: Vec::new(),
                pprof: None,
            });
        }
        let _ = ready.send(Ok(()));

        let deadline = self.request.seconds.map(|s| began + Duration::from_secs(s));
        let mut next_tick = began + Duration::from_secs(1);
        let (extra, ending) = loop {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                break (Vec::new(), SessionEnd::Completed);
            }
            let mut wake = next_tick;
            if let Some(deadline) = deadline {
                wake = wake.min(deadline);
            }
            match commands.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(Command::Stop { extra }) => break (extra, SessionEnd::Stopped),
                Err(RecvTimeoutError::Timeout) => {
                    if Instant::now() >= next_tick {
                        if heap_origin.is_some() {
                            timeline.record(began.elapsed());
                        }
                        if let Some(collector) = cpu.as_mut() {
                            collector.drain();
                        }
                        next_tick += Duration::from_secs(1);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break (Vec::new(), SessionEnd::Stopped),
            }
        };

        // The session ends here: the heap's last point and counters are taken now, before any
        // report building, and sampling stops.
        let heap_end = heap_origin.map(|_| {
            timeline.record(began.elapsed());
            alloc::stop_sampling();
            HeapEnd::now()
        });

        // Any panic below still completes the session with an error rather than leaving
        // `stop()` callers waiting.
        let inner = Arc::clone(&self.inner);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut sampler = SamplerStats::default();
            let cpu = cpu.map(|collector| {
                let mut symbols = lock(&inner.symbols);
                collector
                    .finish_with_stats(&mut symbols)
                    .map(|(profile, stats)| {
                        sampler = stats;
                        profile
                    })
            });
            let heap = heap_origin.map(|stats_at_start| {
                let mut symbols = lock(&inner.symbols);
                let mut profile = heap::snapshot(
                    self.info.started,
                    stats_at_start,
                    heap_end,
                    timeline.points.clone(),
                    &mut symbols,
                );
                // What report building costs, shown apart from the session's growth.
                timeline.record_phase(began.elapsed(), Phase::Report);
                profile.timeline = timeline.points.clone();
                profile.profiler = alloc::profiler_stats();
                profile
            });
            if let Some(stats_at_start) = heap_origin {
                let pprof = heap.as_ref().map(|profile| {
                    [HeapView::InUse, HeapView::Allocated]
                        .map(|view| Arc::new(pprof_out::heap_pprof_gz(profile, view)))
                });
                lock(&inner.state).heap_sites_from = Some(HeapOrigin {
                    started: self.info.started,
                    stats_at_start,
                    end: heap_end,
                    timeline: timeline.points.clone(),
                    pprof,
                });
            }
            self.write(Collected {
                cpu,
                sampler,
                heap,
                extra,
                ended: SystemTime::now(),
                ending,
            })
        }));
        alloc::stop_sampling();
        let result = match outcome {
            Ok(result) => result,
            Err(_) => Err(ProfilingError::SessionFailed(
                "the session thread panicked while writing reports".into(),
            )),
        };
        *lock(&self.inner.symbols) = Symbolizer::new();
        release_freed_memory();
        {
            let mut state = lock(&self.inner.state);
            state.active = None;
            // A session that produced nothing is still listed, as `failed` with its error.
            let remembered = match &result {
                Ok(finished) => FinishedSession {
                    // The pprof bytes belong to the waiting request, not to the history.
                    cpu_pprof_gz: None,
                    ..finished.clone()
                },
                Err(err) => self.failed(err),
            };
            if state.history.len() >= HISTORY {
                state.history.pop_front();
            }
            state.history.push_back(remembered);
        }
        match &result {
            Ok(finished) => log::info!(
                "profiling session {} finished after {:.1}s: {} file(s)",
                finished.info.id,
                finished.duration.as_secs_f64(),
                finished.artifacts.len()
            ),
            Err(err) => log::error!("profiling session {} failed: {err}", self.info.id),
        }
        self.completion.set(result);
    }

    /// The history entry of a session that ended in `err` without a result.
    fn failed(&self, err: &ProfilingError) -> FinishedSession {
        let mut finished = self.finished(SessionEnd::Stopped, SystemTime::now());
        finished.errors.push(err.to_string());
        finished
    }

    /// This session as ended at `ended`, with nothing written yet.
    fn finished(&self, ending: SessionEnd, ended: SystemTime) -> FinishedSession {
        FinishedSession {
            info: self.info.clone(),
            ending,
            ended_at: iso(ended),
            duration: ended.duration_since(self.info.started).unwrap_or_default(),
            artifacts: Vec::new(),
            cpu_samples: None,
            heap_samples: None,
            cpu_pprof_gz: None,
            errors: Vec::new(),
        }
    }

    /// Renders and writes every requested artifact; one failing file does not stop the rest.
    fn write(&self, collected: Collected) -> Result<FinishedSession, ProfilingError> {
        let output = &self.request.output;
        let formats = output.formats;
        let names = artifacts::Names::new(
            output.naming.clone(),
            &output.dir,
            self.info.started,
            std::process::id(),
        );
        let mut finished = self.finished(collected.ending, collected.ended);
        let mut first_error = None;
        let mut wanted = 0;
        let mut outputs: Vec<(ArtifactKind, Result<Vec<u8>, ProfilingError>)> = Vec::new();

        match collected.cpu {
            Some(Ok(profile)) => {
                finished.cpu_samples = Some(profile.samples());
                let rows = self.cpu_metadata(&profile, &collected.sampler, &collected.extra);
                if formats.cpu_md {
                    let md = cpu_report::render(&profile, &rows);
                    outputs.push((ArtifactKind::CpuMarkdown, Ok(md.into_bytes())));
                }
                let keep_bytes = self.request.trigger == Trigger::Pprof;
                if formats.cpu_pprof || keep_bytes {
                    let gz = pprof_out::cpu_pprof_gz(&profile);
                    if keep_bytes && let Ok(bytes) = &gz {
                        finished.cpu_pprof_gz = Some(Arc::new(bytes.clone()));
                    }
                    if formats.cpu_pprof {
                        outputs.push((ArtifactKind::CpuPprof, gz));
                    }
                }
                if formats.cpu_svg {
                    let title = format!("CPU {} ({})", self.info.started_at, self.info.id);
                    outputs.push((
                        ArtifactKind::CpuSvg,
                        flamegraph::render_svg(&profile, &title),
                    ));
                }
            }
            Some(Err(err)) => {
                for kind in [
                    ArtifactKind::CpuMarkdown,
                    ArtifactKind::CpuPprof,
                    ArtifactKind::CpuSvg,
                ] {
                    if formats.wants(kind) {
                        outputs.push((kind, Err(err.clone())));
                    }
                }
                if self.request.trigger == Trigger::Pprof {
                    finished.errors.push(err.to_string());
                    first_error.get_or_insert(err);
                }
            }
            None => {}
        }
        if let Some(profile) = &collected.heap {
            finished.heap_samples = Some(profile.samples);
            let rows = self.heap_metadata(profile, &collected.extra);
            if formats.heap_md {
                let md = heap_report::render(profile, &rows);
                outputs.push((ArtifactKind::HeapMarkdown, Ok(md.into_bytes())));
            }
            if formats.heap_pprof {
                outputs.push((
                    ArtifactKind::HeapPprof,
                    Ok(pprof_out::heap_pprof_gz(profile, HeapView::InUse)),
                ));
            }
        }

        if !outputs.is_empty()
            && let Err(err) = std::fs::create_dir_all(&output.dir)
        {
            first_error.get_or_insert(ProfilingError::Io {
                path: output.dir.clone(),
                source: Arc::new(err),
            });
        }
        for (kind, bytes) in outputs {
            wanted += 1;
            let path = output.dir.join(names.file_name(kind));
            let written = bytes.and_then(|bytes| artifacts::write_atomic(&path, &bytes));
            match written {
                Ok(()) => finished.artifacts.push(Artifact { kind, path }),
                Err(err) => {
                    log::error!("profiling: {}: {err}", path.display());
                    finished.errors.push(format!("{}: {err}", path.display()));
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            // Nothing usable came out of a session that was asked for something: an error.
            Some(err)
                if finished.artifacts.is_empty()
                    && (wanted > 0 || finished.cpu_pprof_gz.is_none()) =>
            {
                Err(err)
            }
            _ => Ok(finished),
        }
    }

    fn common_rows(&self, rows: &mut Vec<(String, String)>) {
        rows.push(("trigger".into(), self.info.trigger.as_str().into()));
        rows.push(("session_id".into(), self.info.id.clone()));
        rows.push(("started".into(), self.info.started_at.clone()));
    }

    fn trailing_rows(&self, rows: &mut Vec<(String, String)>, extra: &[(String, String)]) {
        if let Trigger::Sla(sla) = &self.request.trigger {
            rows.push(("route".into(), sla.route.clone()));
            rows.push(("p95_ms".into(), format!("{:.1}", sla.p95_ms)));
            rows.push(("p99_ms".into(), format!("{:.1}", sla.p99_ms)));
            rows.push(("threshold_p95_ms".into(), sla.threshold_p95_ms.to_string()));
            rows.push(("threshold_p99_ms".into(), sla.threshold_p99_ms.to_string()));
            rows.push(("window_samples".into(), sla.window_samples.to_string()));
        }
        rows.push(("pid".into(), std::process::id().to_string()));
        rows.extend(extra.iter().cloned());
    }

    fn cpu_metadata(
        &self,
        profile: &CpuProfile,
        sampler: &SamplerStats,
        extra: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut rows = Vec::new();
        self.common_rows(&mut rows);
        let expected = profile.cpu_seconds * f64::from(profile.frequency);
        rows.push((
            "duration_seconds".into(),
            format!("{:.2}", profile.duration.as_secs_f64()),
        ));
        rows.push(("frequency_hz".into(), profile.frequency.to_string()));
        rows.push(("cpu_seconds".into(), format!("{:.2}", profile.cpu_seconds)));
        rows.push(("samples_expected".into(), format!("{expected:.0}")));
        rows.push(("samples_taken".into(), profile.samples().to_string()));
        rows.push((
            "samples_lost".into(),
            format!(
                "{} (buffer busy {}, buffer full {})",
                sampler.dropped_busy + sampler.dropped_full,
                sampler.dropped_busy,
                sampler.dropped_full
            ),
        ));
        rows.push((
            "samples_blocklisted".into(),
            sampler.blocklisted.to_string(),
        ));
        rows.push(("sample_table_bytes".into(), sampler.table_bytes.to_string()));
        rows.push(("threads".into(), profile.threads().to_string()));
        rows.push(("blocklist".into(), profile.blocklist.join(", ")));
        rows.push(("unwinder".into(), cpu::UNWINDER.into()));
        rows.push((
            "function_key".into(),
            "function (location = most sampled line)".into(),
        ));
        self.trailing_rows(&mut rows, extra);
        rows
    }

    fn heap_metadata(
        &self,
        profile: &HeapProfile,
        extra: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut rows = Vec::new();
        self.common_rows(&mut rows);
        let start = &profile.stats_at_start;
        let end = &profile.stats;
        rows.push((
            "duration_seconds".into(),
            format!("{:.2}", profile.duration.as_secs_f64()),
        ));
        rows.push(("sampling_rate_bytes".into(), profile.rate.to_string()));
        rows.push((
            "sampling".into(),
            "poisson, unbiased as Go's scaleHeapSample".into(),
        ));
        rows.push((
            "allocations_in_session".into(),
            end.allocations
                .saturating_sub(start.allocations)
                .to_string(),
        ));
        rows.push((
            "bytes_allocated_in_session".into(),
            end.bytes_allocated
                .saturating_sub(start.bytes_allocated)
                .to_string(),
        ));
        rows.push((
            "live_heap_at_start_bytes".into(),
            start.live_bytes.to_string(),
        ));
        rows.push((
            "peak_heap_error_bound_bytes".into(),
            (profile.threads as u64 * alloc::PEAK_SLACK_PER_THREAD).to_string(),
        ));
        rows.push((
            "counters".into(),
            "the service's heap (the profiler's own allocations apart); allocations, frees and bytes from start to stop, live heap and blocks at stop; each thread's published every 64 KiB (error bound above); realloc counts as free + allocation".into(),
        ));
        rows.push((
            "profiler_allocations".into(),
            if alloc::tagging_enabled() {
                "tagged and counted apart (Profiler heap)".into()
            } else {
                "not separable here (not glibc's malloc): counted as the service's".into()
            },
        ));
        rows.push(("threads".into(), profile.threads.to_string()));
        self.trailing_rows(&mut rows, extra);
        rows
    }
}
