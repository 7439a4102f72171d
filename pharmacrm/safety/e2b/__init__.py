"""ICH E2B(R3) ICSR messages: export (export.py), business rules (rules.py), import of incoming ICSRs
(importer.py) and of acknowledgements (ack.py), XML-schema validation (schema.py)."""
