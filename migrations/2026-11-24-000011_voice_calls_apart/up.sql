-- Every call is a conversation of its own (R13): the same number may call twice at once (a caller
-- on two lines, every anonymous caller), so "one open conversation per customer address" holds
-- for the messaging channels only.
DROP INDEX conversations_one_open_per_address;
CREATE UNIQUE INDEX conversations_one_open_per_address
    ON conversations (service_id, customer_address)
    WHERE state IN ('pre_opening', 'queued', 'offered', 'in_service', 'inactive_in_queue')
      AND channel <> 'voice';
