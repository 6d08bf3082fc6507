ALTER TABLE conversations RESET (fillfactor);
