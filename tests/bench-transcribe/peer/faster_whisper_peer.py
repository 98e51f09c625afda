#!/usr/bin/env python3
"""The faster-whisper side of `bench-transcribe`: one configuration, in a process of its own.

Reads a JSON job on stdin (or from the file named as the first argument):

    {"model_dir": "...", "compute_type": "int8", "threads": 2, "vad": true,
     "vad_parameters": {...}, "temperature_fallback": true, "warmup": 1,
     "files": [{"path": "a.wav", "language": "fr"}, ...]}

and prints one JSON object on stdout:

    {"load_secs": 0.4, "warmup_secs": 1.2, "peak_rss_kb": 312000, "versions": {...},
     "files": [{"path": "a.wav", "text": "...", "secs": 0.8, "cpu_secs": 1.5}, ...]}

(the same shape as the Valise child's). `warmup` untimed runs of the first file come first, as
on the Valise side (they also load faster-whisper's VAD model, which it loads lazily).

Decoding mirrors what Valise asks of whisper.cpp: greedy (beam_size=1, best_of=1), the language
forced, no conditioning on previous text (Valise sets whisper.cpp's no_context), timestamps
decoded, the same temperature fallback thresholds, and when Valise uses its Silero VAD,
faster-whisper's own Silero VAD with Valise's VAD parameters. Timing covers `transcribe()` and
consuming its lazy segment generator, audio decoding included (as on the Valise side).
"""

import json
import resource
import sys
import time


def peak_rss_kb():
    """VmHWM, the same figure the Valise child reports; ru_maxrss if /proc is unavailable."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def cpu_secs():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def main():
    job = json.load(open(sys.argv[1], encoding="utf-8") if len(sys.argv) > 1 else sys.stdin)
    started = time.perf_counter()
    from faster_whisper import WhisperModel  # imported inside the load time: it is part of it

    model = WhisperModel(
        job["model_dir"],
        device="cpu",
        compute_type=job["compute_type"],
        cpu_threads=job["threads"],
        num_workers=1,
        local_files_only=True,
    )
    load_secs = time.perf_counter() - started

    if job.get("temperature_fallback", True):
        temperature = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    else:
        temperature = [0.0]

    def run(path, language):
        segments, _info = model.transcribe(
            path,
            language=language,
            task="transcribe",
            beam_size=1,
            best_of=1,
            temperature=temperature,
            compression_ratio_threshold=2.4,
            log_prob_threshold=-1.0,
            no_speech_threshold=0.6,
            condition_on_previous_text=False,
            without_timestamps=False,
            suppress_blank=True,
            suppress_tokens=[-1],
            vad_filter=bool(job.get("vad", True)),
            vad_parameters=job.get("vad_parameters") or None,
        )
        texts = [s.text.strip() for s in segments]  # the lazy generator does the work
        return " ".join(t for t in texts if t)

    files = job["files"]
    t0 = time.perf_counter()
    for _ in range(job.get("warmup", 0) if files else 0):
        run(files[0]["path"], files[0]["language"])
    warmup_secs = time.perf_counter() - t0

    out = []
    for f in files:
        t0, c0 = time.perf_counter(), cpu_secs()
        text = run(f["path"], f["language"])
        out.append(
            {
                "path": f["path"],
                "text": text,
                "secs": time.perf_counter() - t0,
                "cpu_secs": cpu_secs() - c0,
            }
        )
    import ctranslate2
    import faster_whisper

    versions = {
        "faster-whisper": faster_whisper.__version__,
        "ctranslate2": ctranslate2.__version__,
    }
    json.dump(
        {
            "load_secs": load_secs,
            "warmup_secs": warmup_secs,
            "peak_rss_kb": peak_rss_kb(),
            "versions": versions,
            "files": out,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
