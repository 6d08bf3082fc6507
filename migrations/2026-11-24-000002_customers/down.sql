DROP TABLE whatsapp_contacts;
DROP TABLE channel_identities;
DROP TABLE customers;
