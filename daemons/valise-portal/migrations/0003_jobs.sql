-- Work an engine may still hold for a job that no longer exists. A job row can go while the
-- job is being handed to the transcription engine, runs there, waits there to be
-- collected, or is being translated; the trigger records it in the same transaction as the
-- delete (the owner's, retention's, or the cascade of its user's deletion), and the
-- portal's dispatcher makes the engine forget it (cancel, drop its copy of the upload and
-- its result), then removes the row here. Ids only, never content.
CREATE TABLE engine_forget (
    id          INTEGER PRIMARY KEY,
    job_id      TEXT NOT NULL,
    -- The transcription engine's id for the job, when it had one.
    engine_job  TEXT,
    created_at  INTEGER NOT NULL
);

CREATE TRIGGER jobs_engine_forget AFTER DELETE ON jobs
WHEN OLD.state IN ('queued', 'running') OR OLD.engine_job IS NOT NULL
BEGIN
    INSERT INTO engine_forget (job_id, engine_job, created_at)
    VALUES (OLD.id, OLD.engine_job, CAST(strftime('%s', 'now') AS INTEGER));
END;
