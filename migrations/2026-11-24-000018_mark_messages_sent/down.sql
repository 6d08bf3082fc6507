DROP FUNCTION mark_messages_sent(uuid[], text[], timestamptz);
