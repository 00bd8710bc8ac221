-- Login keys compare and sort byte by byte, whatever the database's default collation:
-- the admin search by login prefix is a range on login_key, and under a linguistic
-- collation (en_US.UTF-8 ignores punctuation) `film_` would match `film-ann`.
alter table users alter column login_key type text collate "C";
