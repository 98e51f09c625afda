//! The Silero VAD ONNX model, its sessions, and the per-frame inference.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::{TensorElementType, TensorRef, ValueType};

use crate::segmenter::Segmenter;
use crate::{CONTEXT_SAMPLES, FRAME_SAMPLES, SAMPLE_RATE, SpeechSpan, VadConfig, VadError};

/// A loaded Silero VAD model (v5/v6 ONNX export).
///
/// Cheap to clone (an [`Arc`]), `Send + Sync`. ONNX Runtime's `Session::run` needs
/// exclusive access and the recurrent state belongs to one audio stream, so every
/// [`VadStream`] borrows a session of its own from a small pool kept here: sessions are
/// created on demand (a few ms each, from the model bytes kept in memory) and returned
/// to the pool when the stream is dropped, so concurrent streams never wait on each other
/// and sequential streams reuse one session.
#[derive(Clone)]
pub struct VadModel {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    bytes: Vec<u8>,
    io: Io,
    pool: Mutex<Vec<Session>>,
}

/// Names and sizes of the model's inputs/outputs, discovered at load time.
#[derive(Debug, Clone)]
struct Io {
    input: String,
    state: String,
    /// `sr` (int64 scalar); absent in some exports (e.g. `silero_vad_half.onnx`).
    sr: Option<String>,
    prob_out: String,
    state_out: String,
    /// Elements of the state tensor `[2, 1, hidden]`.
    state_len: usize,
    hidden: usize,
}

impl fmt::Debug for VadModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VadModel")
            .field("path", &self.inner.path)
            .field("io", &self.inner.io)
            .finish_non_exhaustive()
    }
}

impl VadModel {
    /// Loads the model at `model` (e.g. `silero_vad.onnx` from silero-vad 6.x).
    ///
    /// If ONNX Runtime was not initialised with [`init_onnxruntime`](crate::init_onnxruntime),
    /// it is loaded from [`find_onnxruntime`](crate::find_onnxruntime).
    pub fn load(model: &Path) -> Result<Self, VadError> {
        let env = crate::runtime::environment()?;
        let bytes = std::fs::read(model).map_err(|source| VadError::ModelRead {
            path: model.to_path_buf(),
            source,
        })?;
        let session = new_session(env, &bytes, model)?;
        let io = Io::inspect(&session, model)?;
        tracing::debug!(model = %model.display(), ?io, "Silero VAD model loaded");
        Ok(Self {
            inner: Arc::new(Inner {
                path: model.to_path_buf(),
                bytes,
                io,
                pool: Mutex::new(vec![session]),
            }),
        })
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Starts a stream (one recording) with `cfg`. The stream owns a clone of the model,
    /// so it can move to another thread or task.
    ///
    /// An invalid `cfg` (threshold outside (0, 1], non-positive `max_speech_s`) is
    /// reported by the first [`VadStream::push`]/[`VadStream::finish`].
    pub fn stream(&self, cfg: VadConfig) -> VadStream {
        let segmenter = Segmenter::new(&cfg);
        VadStream {
            model: self.clone(),
            session: self.take_session(),
            state: vec![0.0; self.inner.io.state_len],
            window: vec![0.0; CONTEXT_SAMPLES + FRAME_SAMPLES],
            filled: 0,
            total: 0,
            segmenter,
            probs: None,
        }
    }

    /// Speech probability of every 512-sample frame of `pcm` (16 kHz mono, the last frame
    /// zero-padded), from a fresh state: Python's `OnnxWrapper.audio_forward`.
    pub fn probabilities(&self, pcm: &[f32]) -> Result<Vec<f32>, VadError> {
        let mut stream = self.stream(VadConfig::default());
        stream.record_probabilities(true);
        stream.push(pcm)?;
        let mut probs = stream.take_probabilities();
        let tail = stream.finish_with_probabilities()?;
        probs.extend(tail);
        Ok(probs)
    }

    fn take_session(&self) -> Option<Session> {
        self.inner
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn return_session(&self, session: Session) {
        self.inner
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(session);
    }

    fn create_session(&self) -> Result<Session, VadError> {
        new_session(
            crate::runtime::environment()?,
            &self.inner.bytes,
            &self.inner.path,
        )
    }
}

fn new_session(
    env: &ort::environment::Environment,
    bytes: &[u8],
    path: &Path,
) -> Result<Session, VadError> {
    let err = |source: ort::Error| VadError::ModelLoad {
        path: path.to_path_buf(),
        source,
    };
    // One thread: a 32 ms frame costs well under a millisecond, threads would only add
    // synchronisation, and the cores are whisper's. Same options as silero's OnnxWrapper.
    Session::builder(env)
        .map_err(err)?
        .with_intra_threads(1)
        .map_err(|e| err(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| err(e.into()))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| err(e.into()))?
        .commit_from_memory(bytes)
        .map_err(err)
}

fn tensor_info(ty: &ValueType) -> Option<(TensorElementType, &[i64])> {
    match ty {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, &shape[..])),
        _ => None,
    }
}

impl Io {
    fn inspect(session: &Session, path: &Path) -> Result<Self, VadError> {
        let bad = |detail: String| VadError::ModelSignature {
            path: path.to_path_buf(),
            detail,
        };
        let describe = |outlets: &[ort::value::Outlet]| {
            outlets
                .iter()
                .map(|o| format!("{}: {:?}", o.name(), o.dtype()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let inputs = session.inputs();
        let outputs = session.outputs();
        let signature = || {
            format!(
                "inputs [{}], outputs [{}]",
                describe(inputs),
                describe(outputs)
            )
        };
        if inputs.iter().any(|i| i.name() == "h" || i.name() == "c") {
            return Err(bad(format!(
                "this looks like Silero VAD v3/v4 (separate h/c state); v5 or later is needed ({})",
                signature()
            )));
        }

        let mut input = None;
        let mut state = None;
        let mut sr = None;
        let mut hidden = 128;
        for i in inputs {
            let Some((ty, shape)) = tensor_info(i.dtype()) else {
                return Err(bad(format!("input {} is not a tensor", i.name())));
            };
            match (i.name(), ty, shape.len()) {
                ("input", TensorElementType::Float32, 2) => input = Some(i.name().to_owned()),
                ("state", TensorElementType::Float32, 3) => {
                    if shape[0] > 0 && shape[0] != 2 {
                        return Err(bad(format!(
                            "state has shape {shape:?}, expected [2, batch, H]"
                        )));
                    }
                    if shape[2] > 0 {
                        hidden = usize::try_from(shape[2]).unwrap_or(hidden);
                    }
                    state = Some(i.name().to_owned());
                }
                ("sr", TensorElementType::Int64, 0) => sr = Some(i.name().to_owned()),
                _ => {
                    return Err(bad(format!(
                        "unexpected input {} ({})",
                        i.name(),
                        signature()
                    )));
                }
            }
        }
        let mut prob_out = None;
        let mut state_out = None;
        for o in outputs {
            match (o.name(), tensor_info(o.dtype())) {
                ("output", Some((TensorElementType::Float32, _))) => {
                    prob_out = Some(o.name().to_owned());
                }
                ("stateN", Some((TensorElementType::Float32, _))) => {
                    state_out = Some(o.name().to_owned());
                }
                _ => {}
            }
        }
        match (input, state, prob_out, state_out) {
            (Some(input), Some(state), Some(prob_out), Some(state_out)) => Ok(Self {
                input,
                state,
                sr,
                prob_out,
                state_out,
                state_len: 2 * hidden,
                hidden,
            }),
            _ => Err(bad(format!(
                "expected inputs input[float; batch, samples], state[float; 2, batch, H], optional \
                 sr[int64] and outputs output, stateN; got {}",
                signature()
            ))),
        }
    }
}

/// One audio stream through the VAD: feed 16 kHz mono `f32` samples in chunks of any
/// size, collect speech spans as they become final.
///
/// Samples are framed into 512-sample windows (each preceded by the previous window's
/// last 64 samples, as silero's `OnnxWrapper` does); only the unfinished window is
/// buffered, so memory stays constant however long the recording is.
pub struct VadStream {
    model: VadModel,
    session: Option<Session>,
    /// Recurrent state `[2, 1, hidden]`.
    state: Vec<f32>,
    /// `CONTEXT_SAMPLES` of context followed by the frame being filled.
    window: Vec<f32>,
    /// Samples of the current frame received so far.
    filled: usize,
    /// Samples received in total.
    total: u64,
    segmenter: Result<Segmenter, VadError>,
    probs: Option<Vec<f32>>,
}

impl fmt::Debug for VadStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VadStream")
            .field("model", &self.model.inner.path)
            .field("samples", &self.total)
            .field("segmenter", &self.segmenter)
            .finish_non_exhaustive()
    }
}

impl VadStream {
    /// Feeds the next samples (16 kHz mono, nominally in [-1, 1]); returns the speech spans
    /// that became final, in order. Spans are in samples from the start of the stream.
    pub fn push(&mut self, mut pcm: &[f32]) -> Result<Vec<SpeechSpan>, VadError> {
        let mut out = Vec::new();
        while !pcm.is_empty() {
            let take = (FRAME_SAMPLES - self.filled).min(pcm.len());
            let at = CONTEXT_SAMPLES + self.filled;
            self.window[at..at + take].copy_from_slice(&pcm[..take]);
            self.filled += take;
            self.total += take as u64;
            pcm = &pcm[take..];
            if self.filled == FRAME_SAMPLES {
                self.frame(&mut out)?;
            }
        }
        Ok(out)
    }

    /// Ends the stream: runs the zero-padded last partial frame, closes an open span at
    /// the end of the audio, and returns the remaining spans.
    pub fn finish(self) -> Result<Vec<SpeechSpan>, VadError> {
        self.finish_inner().map(|(spans, _)| spans)
    }

    fn finish_with_probabilities(self) -> Result<Vec<f32>, VadError> {
        self.finish_inner().map(|(_, probs)| probs)
    }

    fn finish_inner(mut self) -> Result<(Vec<SpeechSpan>, Vec<f32>), VadError> {
        let mut out = Vec::new();
        if self.filled > 0 {
            self.window[CONTEXT_SAMPLES + self.filled..].fill(0.0);
            self.frame(&mut out)?;
        }
        let segmenter = std::mem::replace(
            &mut self.segmenter,
            Err(VadError::Config("stream already finished".to_owned())),
        )?;
        out.extend(segmenter.finish(self.total));
        Ok((out, self.take_probabilities()))
    }

    /// Samples received so far.
    pub fn samples(&self) -> u64 {
        self.total
    }

    /// The earliest sample (from the start of the stream) that a span still to come may
    /// include. Audio before it is no longer needed by anyone waiting for spans.
    pub fn pending_from(&self) -> u64 {
        // Samples of the unfinished frame have not been judged yet: they, too, may be speech.
        let unjudged = self.total - self.filled as u64;
        self.segmenter
            .as_ref()
            .map_or(0, Segmenter::pending_from)
            .min(unjudged)
    }

    /// Whether the last complete frame left the detector inside speech.
    pub fn in_speech(&self) -> bool {
        self.segmenter.as_ref().is_ok_and(Segmenter::in_speech)
    }

    /// Starts (or stops) keeping the speech probability of every frame, for
    /// [`take_probabilities`](Self::take_probabilities). Off by default.
    pub fn record_probabilities(&mut self, on: bool) {
        match (on, &self.probs) {
            (true, None) => self.probs = Some(Vec::new()),
            (false, _) => self.probs = None,
            _ => {}
        }
    }

    /// The probabilities recorded since the last call (one per 512-sample frame, frames in
    /// order), leaving the record empty.
    pub fn take_probabilities(&mut self) -> Vec<f32> {
        self.probs.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Runs the model on the full window and feeds the probability to the segmenter.
    fn frame(&mut self, out: &mut Vec<SpeechSpan>) -> Result<(), VadError> {
        let segmenter = match &mut self.segmenter {
            Ok(s) => s,
            Err(e) => return Err(VadError::Config(e.to_string())),
        };
        let frame_no = segmenter.frames();
        let session = match self.session.take() {
            Some(s) => s,
            None => self.model.create_session()?,
        };
        let session = self.session.insert(session);
        let io = &self.model.inner.io;
        let path = &self.model.inner.path;
        let infer = |source: ort::Error| VadError::Inference {
            path: path.clone(),
            frame: frame_no,
            source,
        };
        let bad = |detail: String| VadError::BadOutput {
            path: path.clone(),
            frame: frame_no,
            detail,
        };

        let sr = [i64::from(SAMPLE_RATE)];
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(3);
        inputs.push((
            Cow::Borrowed(io.input.as_str()),
            TensorRef::from_array_view(([1usize, self.window.len()], &self.window[..]))
                .map_err(infer)?
                .into(),
        ));
        inputs.push((
            Cow::Borrowed(io.state.as_str()),
            TensorRef::from_array_view(([2usize, 1, io.hidden], &self.state[..]))
                .map_err(infer)?
                .into(),
        ));
        if let Some(name) = &io.sr {
            inputs.push((
                Cow::Borrowed(name.as_str()),
                TensorRef::from_array_view(((), &sr[..]))
                    .map_err(infer)?
                    .into(),
            ));
        }
        let outputs = session.run(inputs).map_err(infer)?;

        let (_, prob) = outputs
            .get(&io.prob_out)
            .ok_or_else(|| bad(format!("no output {}", io.prob_out)))?
            .try_extract_tensor::<f32>()
            .map_err(infer)?;
        let prob = *prob
            .first()
            .ok_or_else(|| bad("empty probability tensor".to_owned()))?;
        let (_, state) = outputs
            .get(&io.state_out)
            .ok_or_else(|| bad(format!("no output {}", io.state_out)))?
            .try_extract_tensor::<f32>()
            .map_err(infer)?;
        if state.len() != self.state.len() {
            return Err(bad(format!(
                "state has {} values, expected {}",
                state.len(),
                self.state.len()
            )));
        }
        self.state.copy_from_slice(state);
        drop(outputs);

        // Next context: the last CONTEXT_SAMPLES of this window.
        self.window.copy_within(FRAME_SAMPLES.., 0);
        self.filled = 0;
        if let Some(p) = &mut self.probs {
            p.push(prob);
        }
        segmenter.push(prob, out);
        Ok(())
    }
}

impl Drop for VadStream {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.model.return_session(session);
        }
    }
}

/// Speech spans of a whole in-memory recording (16 kHz mono): the offline equivalent of a
/// [`VadStream`] fed everything at once, i.e. silero's `get_speech_timestamps`.
pub fn speech_spans(
    model: &VadModel,
    pcm: &[f32],
    cfg: &VadConfig,
) -> Result<Vec<SpeechSpan>, VadError> {
    let mut stream = model.stream(cfg.clone());
    let mut spans = stream.push(pcm)?;
    spans.extend(stream.finish()?);
    Ok(spans)
}
