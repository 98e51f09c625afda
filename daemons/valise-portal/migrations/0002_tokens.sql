-- API tokens get an expiry (NULL: until revoked) and a scope: a token carries its user's
-- admin rights only when it was created with the admin scope. Tokens made before this
-- migration have no admin scope.

ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
CREATE INDEX api_tokens_user ON api_tokens(user_id);
