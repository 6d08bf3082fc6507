ALTER TABLE messages ADD CONSTRAINT messages_service_id_fkey FOREIGN KEY (service_id) REFERENCES services (id);
DROP TRIGGER messages_touch_conversations ON messages;
CREATE TRIGGER messages_touch_conversations
    AFTER INSERT ON messages
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT
    EXECUTE FUNCTION messages_touch_conversations();
DROP FUNCTION ingest_into_open(json, text[], text[]);
