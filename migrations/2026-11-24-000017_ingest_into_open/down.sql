ALTER TABLE messages ADD CONSTRAINT messages_service_id_fkey FOREIGN KEY (service_id) REFERENCES services (id);
DROP FUNCTION ingest_into_open(json, text[], text[]);
