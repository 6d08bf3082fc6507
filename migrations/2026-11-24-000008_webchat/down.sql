DROP TABLE webchat_uploads;
DROP TABLE webchat_visitors;
