DROP FUNCTION open_conversations_of(uuid[], text[], text[]);
