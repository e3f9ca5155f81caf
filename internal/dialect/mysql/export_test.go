package mysql

// InterpretErrorForTest lets the external tests classify raw driver errors.
var InterpretErrorForTest = interpretError

// HeadAndFloorQueryForTest is Head's statement, for the cost measurement.
const HeadAndFloorQueryForTest = headAndFloorQuery
