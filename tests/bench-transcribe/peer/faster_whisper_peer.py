#!/usr/bin/env python3
"""The faster-whisper side of `bench-transcribe`: one configuration, in a process of its own.

The same line protocol as the benchmark's Valise child. The first line on stdin is the job:

    {"model_dir": "...", "compute_type": "int8", "threads": 2, "vad": true,
     "vad_parameters": {...}, "temperature_fallback": true, "warmup": 1,
     "warmup_file": {"path": "a.wav", "language": "fr"}, "mode": "greedy"}

(mode "defaults": faster-whisper's own defaults instead, `model.transcribe(path, language=...)`)

it loads the model, transcribes the warm-up file `warmup` times untimed (which also loads
faster-whisper's VAD model, loaded lazily), and prints

    {"load_secs": 0.4, "warmup_secs": 1.2, "versions": {...}}

then for each line {"path": "a.wav", "language": "fr"} it prints
{"path": ..., "text": ..., "secs": 0.8, "cpu_secs": 1.5}, and at the end of stdin
{"peak_rss_kb": 312000} (VmHWM, the figure the Valise child reports).

Decoding mirrors what Valise asks of whisper.cpp: greedy (beam_size=1, best_of=1; or the
job's beam_size, as Valise's --beam-size), the language
forced, no conditioning on previous text (Valise sets whisper.cpp's no_context), timestamps
decoded, the same temperature fallback and thresholds (its sampling seeded per file, as
whisper.cpp's is per state), and when Valise uses its Silero VAD,
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


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    job = json.loads(sys.stdin.readline())
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

    import ctranslate2

    def run(path, language):
        if job.get("mode") == "defaults":
            # faster-whisper as a new user runs it: its own defaults (beam 5, best_of 5, no
            # VAD, conditioned on previous text, temperature fallback), the language given.
            ctranslate2.set_random_seed(0)
            segments, _info = model.transcribe(path, language=language)
            texts = [s.text.strip() for s in segments]
            return " ".join(t for t in texts if t)
        # Temperature fallback samples: without a fixed seed faster-whisper's text for a file
        # changed from run to run (one one-word prompt: 1 or 7 errors, 1.3 points of the French
        # set). Seeded per file, each file's result is reproducible and independent of order.
        ctranslate2.set_random_seed(0)
        segments, _info = model.transcribe(
            path,
            language=language,
            task="transcribe",
            beam_size=int(job.get("beam_size", 1)),
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

    t0 = time.perf_counter()
    warm = job.get("warmup_file")
    for _ in range(job.get("warmup", 0) if warm else 0):
        run(warm["path"], warm["language"])
    warmup_secs = time.perf_counter() - t0

    import faster_whisper

    versions = {
        "faster-whisper": faster_whisper.__version__,
        "ctranslate2": ctranslate2.__version__,
    }
    say({"load_secs": load_secs, "warmup_secs": warmup_secs, "versions": versions})
    for line in sys.stdin:
        if not line.strip():
            continue
        f = json.loads(line)
        t0, c0 = time.perf_counter(), cpu_secs()
        text = run(f["path"], f["language"])
        say(
            {
                "path": f["path"],
                "text": text,
                "secs": time.perf_counter() - t0,
                "cpu_secs": cpu_secs() - c0,
            }
        )
    say({"peak_rss_kb": peak_rss_kb()})


if __name__ == "__main__":
    main()
