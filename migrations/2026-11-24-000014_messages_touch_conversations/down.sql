DROP TRIGGER messages_touch_conversations ON messages;
DROP FUNCTION messages_touch_conversations();
