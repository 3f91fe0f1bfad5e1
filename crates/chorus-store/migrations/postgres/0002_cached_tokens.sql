-- Prompt tokens that came from the prompt cache (OpenAI's
-- usage.prompt_tokens_details.cached_tokens): per answer, and summed per session.
ALTER TABLE sessions ADD COLUMN cached_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN cached_tokens BIGINT;
