-- The session's own small state (actix-session's state map: a form token, preferences),
-- JSON. Never tokens: those stay sealed in `tokens` and change only by compare-and-set.
ALTER TABLE sessions ADD COLUMN state TEXT NOT NULL DEFAULT '{}';
