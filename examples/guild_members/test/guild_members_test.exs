defmodule GuildMembersTest do
  use ExUnit.Case

  test "Strata works as a dependency: joins and leaves report their rows" do
    list = GuildMembers.new()
    members = for i <- 1..500, do: {rem(i, 3), "user#{String.pad_leading("#{i}", 3, "0")}", i}
    Enum.each(Enum.shuffle(members), &GuildMembers.join(list, &1))

    sorted = Enum.sort(members)
    assert GuildMembers.window(list, 0, 99) == Enum.take(sorted, 100)

    newcomer = {0, "aaa", 1000}
    assert GuildMembers.join(list, newcomer) == 0
    assert GuildMembers.leave(list, Enum.at(sorted, 10)) == 11
    assert GuildMembers.window(list, 0, 2) == [newcomer | Enum.take(sorted, 2)]
    assert Strata.native_memory() > 0
  end
end
