DROP FUNCTION engine_apply_batch(jsonb);
