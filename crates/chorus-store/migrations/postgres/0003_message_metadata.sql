-- Facts about how a message was produced, as a JSON object (the native API's
-- MessageMetadata: the model, and the router's decision when it chose the model).
ALTER TABLE messages ADD COLUMN metadata TEXT;
