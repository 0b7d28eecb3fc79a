// The private PostgreSQL server, visible to every file of this test target.
@_exported import GantryTestPostgres
