use std::path::PathBuf;

/// Everything that can go wrong while loading or running the VAD.
///
/// Each variant says what was being done and, where there is one, which file.
#[derive(Debug, thiserror::Error)]
pub enum VadError {
    /// No ONNX Runtime library was given and none was found in the usual places.
    #[error(
        "ONNX Runtime library not found (looked in: {looked}); install the model store's runtime, \
         set ORT_DYLIB_PATH, or call valise_vad::init_onnxruntime with its path"
    )]
    RuntimeNotFound {
        /// The places that were searched, in order.
        looked: String,
    },

    /// The ONNX Runtime shared library could not be loaded (missing, wrong architecture, too old).
    #[error("cannot load ONNX Runtime from {path}: {source}")]
    RuntimeLoad {
        path: PathBuf,
        #[source]
        source: ort::LoadDynamicError,
    },

    /// The library loaded but the ONNX Runtime environment could not be created.
    #[error("cannot create the ONNX Runtime environment (library {path}): {source}")]
    RuntimeInit {
        path: PathBuf,
        #[source]
        source: ort::Error,
    },

    /// The model file could not be read.
    #[error("cannot read VAD model {path}: {source}")]
    ModelRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// ONNX Runtime refused the model (corrupt file, unsupported opset, ...).
    #[error("cannot load VAD model {path} into ONNX Runtime: {source}")]
    ModelLoad {
        path: PathBuf,
        #[source]
        source: ort::Error,
    },

    /// The model loaded but its inputs/outputs are not those of a Silero VAD v5/v6 model.
    #[error("{path} is not a supported Silero VAD model: {detail}")]
    ModelSignature { path: PathBuf, detail: String },

    /// Running the model on one 32 ms frame failed.
    #[error("VAD inference failed on frame {frame} (model {path}): {source}")]
    Inference {
        path: PathBuf,
        frame: u64,
        #[source]
        source: ort::Error,
    },

    /// The model ran but returned something unexpected.
    #[error("VAD model {path} returned an unexpected output on frame {frame}: {detail}")]
    BadOutput {
        path: PathBuf,
        frame: u64,
        detail: String,
    },

    /// A configuration value is out of range.
    #[error("invalid VAD configuration: {0}")]
    Config(String),
}
