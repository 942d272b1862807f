"""The rules of Jifen as plain Python: standard library only.

Nothing here touches a database, a web framework or a clock of its own: every function takes
the values it needs (including the current time) and returns a result or raises an error from
:mod:`loyalty.errors`.
"""
