DROP INDEX conversations_address_idx;
DROP TABLE media_fetches;
