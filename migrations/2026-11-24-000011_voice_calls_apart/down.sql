DROP INDEX conversations_one_open_per_address;
CREATE UNIQUE INDEX conversations_one_open_per_address
    ON conversations (service_id, customer_address)
    WHERE state IN ('pre_opening', 'queued', 'offered', 'in_service', 'inactive_in_queue');
