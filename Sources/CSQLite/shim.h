#include <sqlite3.h>

/// SQLITE_TRANSIENT is a cast macro Swift cannot import: it tells SQLite to copy bound data.
static inline void (*loupe_sqlite_transient(void))(void *) { return SQLITE_TRANSIENT; }
