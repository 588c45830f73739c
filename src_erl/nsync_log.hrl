%% nsync's own log events: `?LOG_WARNING(Format, Args, ?NSYNC_LOG)'.
%%
%% They carry no `domain': OTP's default handler prints only events without
%% one or in `[otp | _]', so a domain would hide them on a default node.
%% They carry `application => nsync' instead (as Elixir's Logger marks
%% every event with its application), by which users filter or silence
%% them; a user callback's own events, logged in the link process too, do
%% not. See "Logging" in the README.
-include_lib("kernel/include/logger.hrl").

-define(NSYNC_LOG, #{application => nsync}).
