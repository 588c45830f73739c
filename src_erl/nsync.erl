%%% @doc nsync: a Redis/Valkey replica inside the BEAM (API placeholder).
-module(nsync).
