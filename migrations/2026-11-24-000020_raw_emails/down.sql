DROP TABLE raw_emails;
