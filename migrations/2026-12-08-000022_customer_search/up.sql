-- Customer search (K1): a name or trade name anywhere in the text, found through trigram indexes
-- rather than by reading the table; CPF, CNPJ, phones and emails already have their indexes.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX customers_name_trgm_idx ON customers USING gin (name gin_trgm_ops);
CREATE INDEX customers_trade_name_trgm_idx ON customers USING gin (trade_name gin_trgm_ops);
