DROP INDEX customers_trade_name_trgm_idx;
DROP INDEX customers_name_trgm_idx;
DROP EXTENSION IF EXISTS pg_trgm;
