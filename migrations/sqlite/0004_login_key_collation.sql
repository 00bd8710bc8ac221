-- Login keys compare and sort byte by byte: SQLite's default BINARY collation already
-- does, so nothing changes here (PostgreSQL's column gets collate "C").
select 1;
