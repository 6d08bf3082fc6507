DROP TRIGGER messages_touch_last_customer_message ON messages;
DROP FUNCTION messages_touch_last_customer_message();
