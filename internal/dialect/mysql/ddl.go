package mysql

import "github.com/eventfold/eventfold/internal/contract"

// MySQL and MariaDB commit each DDL statement on its own (an implicit
// COMMIT before and after it): a migration of several statements that is
// interrupted midway cannot be rolled back, and its rerun fails on the
// statements that did run ("Can't DROP CONSTRAINT ...; check that it
// exists"). The migrator lets a started migration finish instead.
func init() { contract.RegisterAutocommitDDL("mysql") }
