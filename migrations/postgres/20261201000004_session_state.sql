-- The session's own small state (actix-session's state map: a form token, preferences),
-- JSON. Never tokens: those stay sealed in `tokens` and change only by compare-and-set.
ALTER TABLE sessions ADD COLUMN state TEXT NOT NULL DEFAULT '{}';

-- Replicas' caches hear of state changes too.
DROP TRIGGER sessions_changed ON sessions;
CREATE TRIGGER sessions_changed
    AFTER DELETE OR UPDATE OF tokens, version, expires_at, state ON sessions
    FOR EACH ROW EXECUTE FUNCTION taskflow_bff_session_changed();
