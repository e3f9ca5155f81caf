package integration

import (
	"errors"

	"github.com/eventfold/eventfold"
)

func isTransient(err error) bool { return errors.Is(err, eventfold.ErrTransient) }
