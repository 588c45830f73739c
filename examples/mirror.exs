# Mirrors a Redis/Valkey master into ETS and prints one key.
#
#   rebar3 compile
#   ERL_LIBS=_build/default/lib:_build/default/checkouts elixir examples/mirror.exs [host] [port] [key]
#
# (nsync and telemetry: telemetry is in checkouts/ when built offline from
# _checkouts, in lib/ when fetched from hex.)
#
# Defaults: 127.0.0.1 6379 foo.
{host, port, key} =
  case System.argv() do
    [] -> {"127.0.0.1", 6379, "foo"}
    [host] -> {host, 6379, "foo"}
    [host, port] -> {host, String.to_integer(port), "foo"}
    [host, port, key | _] -> {host, String.to_integer(port), key}
  end

# As a project depending on nsync would have it: nsync and telemetry started.
{:ok, _} = Application.ensure_all_started(:nsync)

case :nsync.start_link(host: host, port: port, block: true, timeout: 60_000) do
  {:ok, pid} ->
    status = :nsync.status(pid)
    IO.puts("mirrored #{host}:#{port}: #{status.keys_loaded} keys loaded")

    case :nsync.lookup(:nsync, key) do
      [{^key, value}] -> IO.puts("#{key} = #{inspect(value)}")
      [] -> IO.puts("#{key} is not set")
    end

    :ok = :nsync.stop(pid)

  {:error, reason} ->
    IO.puts(:stderr, "cannot mirror #{host}:#{port}: #{inspect(reason)}")
    System.halt(1)
end
