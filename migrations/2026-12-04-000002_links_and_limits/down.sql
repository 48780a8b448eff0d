DROP TABLE rate_limits;
DROP TABLE magic_links;
