DROP TABLE form_answers;
DROP TABLE form_fields;
DROP TABLE whatsapp_templates;
DROP TABLE email_templates;
DROP TABLE canned_messages;
