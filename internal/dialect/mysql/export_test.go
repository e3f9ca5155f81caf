package mysql

// InterpretErrorForTest lets the external tests classify raw driver errors.
var InterpretErrorForTest = interpretError
