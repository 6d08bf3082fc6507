DROP TABLE mailbox_cursors;
DROP TABLE webhook_receipts;
