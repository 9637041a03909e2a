"""E-invoices (电子发票): parsing, validation, deductible input VAT, verification, storage."""
