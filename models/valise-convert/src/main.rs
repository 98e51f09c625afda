//! `valise-convert`: command-line front end of the converter library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use valise_convert::{
    ConvertOptions, EnglishOnly, MarianOptions, OutType, WeightType, convert_marian,
    convert_whisper,
};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Convert speech and translation models for the Valise appliance"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// CTranslate2 whisper model → whisper.cpp GGML file.
    Whisper {
        /// CTranslate2 model directory, or its model.bin.
        #[arg(long, value_name = "DIR_OR_model.bin")]
        ct2: PathBuf,
        /// openai-whisper's whisper/assets/ directory (mel_filters.npz, *.tiktoken).
        #[arg(long, value_name = "DIR")]
        assets: PathBuf,
        /// Output GGML file (written to a temp file, then renamed).
        #[arg(long, value_name = "OUT.bin")]
        out: PathBuf,
        /// Weight type of the output.
        #[arg(long = "type", value_enum, default_value_t = TypeArg::F16)]
        out_type: TypeArg,
        /// Embed the English (gpt2) tokenizer; auto: when n_vocab < 51865.
        #[arg(long, value_enum, default_value_t = EnglishArg::Auto)]
        english_only: EnglishArg,
    },
    /// Marian (Bergamot) translation model → ONNX encoder + one-step decoder.
    Marian {
        /// Marian binary model (model.*.intgemm.alphas.bin or a float model.*.bin).
        #[arg(long, value_name = "model.bin")]
        model: PathBuf,
        /// SentencePiece vocabulary shared by source and target.
        #[arg(long, value_name = "vocab.spm")]
        vocab: PathBuf,
        /// Binary lexical shortlist (lex.*.s2t.bin).
        #[arg(long, value_name = "lex.s2t.bin")]
        shortlist: PathBuf,
        /// tokenizer.json to copy along (default: the one next to the vocabulary, if any).
        #[arg(long, value_name = "tokenizer.json")]
        tokenizer: Option<PathBuf>,
        /// Output directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Weight storage: int8 (the source's int8 values + DequantizeLinear) or f32.
        #[arg(long, value_enum, default_value_t = WeightsArg::Int8)]
        weights: WeightsArg,
        /// Source language code (default: from a model.XXYY.* file name).
        #[arg(long)]
        src_lang: Option<String>,
        /// Target language code (default: from a model.XXYY.* file name).
        #[arg(long)]
        trg_lang: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum WeightsArg {
    F32,
    Int8,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TypeArg {
    F16,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q5_1")]
    Q5_1,
    #[value(name = "q4_0")]
    Q4_0,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EnglishArg {
    Auto,
    Yes,
    No,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("valise-convert: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Whisper {
            ct2,
            assets,
            out,
            out_type,
            english_only,
        } => {
            let opts = ConvertOptions {
                ct2,
                assets,
                out,
                out_type: match out_type {
                    TypeArg::F16 => OutType::F16,
                    TypeArg::Q8_0 => OutType::Q8_0,
                    TypeArg::Q5_1 => OutType::Q5_1,
                    TypeArg::Q4_0 => OutType::Q4_0,
                },
                english_only: match english_only {
                    EnglishArg::Auto => EnglishOnly::Auto,
                    EnglishArg::Yes => EnglishOnly::Yes,
                    EnglishArg::No => EnglishOnly::No,
                },
            };
            let start = Instant::now();
            let report = convert_whisper(&opts)
                .with_context(|| format!("converting {}", opts.ct2.display()))?;
            print!("{report}");
            println!("time:       {:.2} s", start.elapsed().as_secs_f64());
            Ok(())
        }
        Command::Marian {
            model,
            vocab,
            shortlist,
            tokenizer,
            out,
            weights,
            src_lang,
            trg_lang,
        } => {
            let opts = MarianOptions {
                model,
                vocab,
                shortlist,
                tokenizer,
                out,
                weights: match weights {
                    WeightsArg::F32 => WeightType::F32,
                    WeightsArg::Int8 => WeightType::Int8,
                },
                src_lang,
                trg_lang,
            };
            let start = Instant::now();
            let report = convert_marian(&opts)
                .with_context(|| format!("converting {}", opts.model.display()))?;
            print!("{report}");
            println!("time:       {:.2} s", start.elapsed().as_secs_f64());
            Ok(())
        }
    }
}
