DROP TABLE signing_keys;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE deliveries;
DROP TABLE otp_challenges;
DROP TABLE auth_requests;
DROP TABLE users;
DROP TABLE apps;
