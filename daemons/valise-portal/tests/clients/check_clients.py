"""Drives the portal with the users' own client libraries, unchanged: OpenAI's Python SDK
and LibreTranslate's `libretranslatepy` (from PyPI, pinned in scripts/clients-requirements.txt).

Run by tests/clients.rs with the venv's python:

    check_clients.py BASE_URL TOKEN ENGLISH_RECORDING FRENCH_RECORDING

The portal's self-signed certificate is in SSL_CERT_FILE (urllib, which libretranslatepy
uses, reads it from there; the OpenAI client is given it as a user would). Prints one JSON
object with what each call returned; tests/clients.rs asserts on it. A client's exception
fails the run with its traceback.
"""

import json
import os
import ssl
import sys

import libretranslatepy
import openai


def main() -> None:
    base, token, english, french = sys.argv[1:5]
    out = {}

    tls = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    client = openai.OpenAI(
        base_url=base + "/v1",
        api_key=token,
        max_retries=0,
        http_client=openai.DefaultHttpxClient(verify=tls),
    )
    with open(english, "rb") as f:
        t = client.audio.transcriptions.create(model="whisper-1", file=f, language="en")
    out["transcription_json"] = t.text
    with open(english, "rb") as f:
        out["transcription_text"] = client.audio.transcriptions.create(
            model="whisper-1", file=f, response_format="text"
        )
    with open(english, "rb") as f:
        out["transcription_srt"] = client.audio.transcriptions.create(
            model="whisper-1", file=f, response_format="srt"
        )
    with open(english, "rb") as f:
        v = client.audio.transcriptions.create(
            model="whisper-1", file=f, response_format="verbose_json"
        )
    out["transcription_verbose"] = {
        "language": v.language,
        "duration": v.duration,
        "text": v.text,
        "segments": [
            {"id": s.id, "start": s.start, "end": s.end, "text": s.text}
            for s in (v.segments or [])
        ],
    }
    with open(french, "rb") as f:
        out["translation"] = client.audio.translations.create(model="whisper-1", file=f).text
    out["models"] = [m.id for m in client.models.list()]
    out["model"] = client.models.retrieve("whisper-1").id
    try:
        client.models.retrieve("gpt-nothing")
        out["missing_model"] = "found"
    except openai.NotFoundError as e:
        out["missing_model"] = {"status": e.status_code, "message": e.message}
    bad = openai.OpenAI(
        base_url=base + "/v1",
        api_key="vt_forged",
        max_retries=0,
        http_client=openai.DefaultHttpxClient(verify=tls),
    )
    try:
        bad.models.list()
        out["forged_key"] = "accepted"
    except openai.AuthenticationError as e:
        out["forged_key"] = {"status": e.status_code}

    lt = libretranslatepy.LibreTranslateAPI(base, api_key=token)
    out["lt_translate"] = lt.translate("Good morning, how are you?", "en", "pt")
    out["lt_translate_auto"] = lt.translate("The embassy is closed on Monday.", "auto", "pt")
    out["lt_detect"] = lt.detect("Obrigado pela sua paciência, o consulado está fechado.")
    out["lt_languages"] = lt.languages()
    try:
        libretranslatepy.LibreTranslateAPI(base, api_key="vt_forged").translate("Hello", "en", "pt")
        out["lt_forged_key"] = "accepted"
    except Exception as e:  # urllib's HTTPError
        out["lt_forged_key"] = {"status": getattr(e, "code", None), "body": json.loads(e.read())}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
