package bank

// Event types, as recorded in the log.
const (
	EventAccountOpened    = "AccountOpened"
	EventMoneyDeposited   = "MoneyDeposited"
	EventMoneyWithdrawn   = "MoneyWithdrawn"
	EventTransferSent     = "TransferSent"
	EventTransferReceived = "TransferReceived"
)

// AccountOpened starts an account stream.
type AccountOpened struct {
	AccountID string `json:"account_id"`
	Owner     string `json:"owner"`
	Number    string `json:"number"`
}

// MoneyDeposited adds Amount cents.
type MoneyDeposited struct {
	Amount int64 `json:"amount"`
}

// MoneyWithdrawn removes Amount cents.
type MoneyWithdrawn struct {
	Amount int64 `json:"amount"`
}

// TransferSent is recorded on the paying account.
type TransferSent struct {
	TransferID string `json:"transfer_id"`
	To         string `json:"to"`
	Amount     int64  `json:"amount"`
}

// TransferReceived is recorded on the receiving account.
type TransferReceived struct {
	TransferID string `json:"transfer_id"`
	From       string `json:"from"`
	Amount     int64  `json:"amount"`
}

// StreamID is the event stream of an account.
func StreamID(accountID string) string { return "account-" + accountID }
