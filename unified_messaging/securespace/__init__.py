"""The secure space: users, certificates, access lists, establishments and mandates."""
