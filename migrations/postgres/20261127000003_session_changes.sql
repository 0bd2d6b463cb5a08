-- Every replica keeps recently used sessions in memory for a moment; this tells them when
-- one ends or gets new tokens, whoever changed the row (another replica, an operator).
CREATE FUNCTION taskflow_bff_session_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('taskflow_bff_sessions', OLD.key_hash);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER sessions_changed
    AFTER DELETE OR UPDATE OF tokens, version, expires_at ON sessions
    FOR EACH ROW EXECUTE FUNCTION taskflow_bff_session_changed();
