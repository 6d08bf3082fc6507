DROP TABLE media_fetches;
