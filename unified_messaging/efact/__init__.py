"""eFact file formats: the 920000 sending layout and its validator, the feedback messages
(931000, 920098, 920099, 920999, 920900) and their explanations.

Pure formats, no I/O beyond reading a stream: used by invoicing, Mybox and the simulator.

* :mod:`.layout` record types, zones and offsets; :mod:`.values` check digits, amounts, dates;
* :mod:`.units` cutting a sending into segments and records (:func:`.units.read_sending`);
* :mod:`.validator` the streaming validator (:func:`.validator.validate_bytes`), whose checks are
  in :mod:`.header_checks`, :mod:`.record_checks` (with :mod:`.order`), :mod:`.summary_checks`
  and :mod:`.totals`; what it finds is in :mod:`.report` (collected by :mod:`.issue_log`);
* :mod:`.feedback` reading the feedback messages, :mod:`.explain` explaining their error codes.
"""
