//! Room membership: which connections are in which room, which users they
//! belong to, and each room's message sequence.
//!
//! A room is a vector of connection ids. Each member remembers its index
//! in that vector, so leaving is O(1) (`swap_remove`, then the moved member
//! learns its new index from the return value).

use std::collections::HashMap;
use std::sync::Arc;

use super::ConnId;

/// One room.
#[derive(Debug, Default)]
pub struct Room {
    /// Connection ids of the members.
    pub members: Vec<ConnId>,
    /// Live connections per user in this room.
    users: HashMap<Arc<str>, usize>,
    /// The last `seq` given to a message (JSON mode counts from 1).
    pub seq: u64,
}

impl Room {
    /// Users in the room, sorted.
    pub fn users(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.users.keys().map(|u| &**u).collect();
        names.sort_unstable();
        names
    }
}

/// What joining did.
#[derive(Debug, PartialEq, Eq)]
pub struct Joined {
    /// The member's index in the room (keep it for [`Rooms::leave`]).
    pub index: usize,
    /// This is the user's first connection in the room.
    pub first_of_user: bool,
}

/// What leaving did.
#[derive(Debug, PartialEq, Eq)]
pub struct Left {
    /// That was the user's last connection in the room.
    pub last_of_user: bool,
    /// The member that moved into the leaver's index, which must update
    /// its stored index to the leaver's.
    pub moved: Option<ConnId>,
}

/// All rooms with at least one member.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: HashMap<String, Room>,
}

impl Rooms {
    /// The room called `name`, if it has members.
    pub fn get(&self, name: &str) -> Option<&Room> {
        self.rooms.get(name)
    }

    /// The room called `name`, if it has members.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Room> {
        self.rooms.get_mut(name)
    }

    /// Adds connection `id` of `user` to room `name`.
    pub fn join(&mut self, name: &str, id: ConnId, user: &Arc<str>) -> Joined {
        let room = self.rooms.entry(name.to_string()).or_default();
        room.members.push(id);
        let count = room.users.entry(Arc::clone(user)).or_insert(0);
        *count += 1;
        Joined {
            index: room.members.len() - 1,
            first_of_user: *count == 1,
        }
    }

    /// Removes the member at `index` (connection `id` of `user`).
    pub fn leave(&mut self, name: &str, index: usize, id: ConnId, user: &str) -> Left {
        let Some(room) = self.rooms.get_mut(name) else {
            return Left {
                last_of_user: false,
                moved: None,
            };
        };
        debug_assert_eq!(room.members.get(index), Some(&id));
        if room.members.get(index) == Some(&id) {
            room.members.swap_remove(index);
        }
        let moved = room.members.get(index).copied();
        let last_of_user = match room.users.get_mut(user) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                room.users.remove(user);
                true
            }
            None => false,
        };
        if room.members.is_empty() {
            self.rooms.remove(name);
        }
        Left {
            last_of_user,
            moved,
        }
    }

    /// Number of rooms with members.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> ConnId {
        ConnId::from_token(n)
    }

    #[test]
    fn join_and_leave_track_users_and_indices() {
        let mut r = Rooms::default();
        assert!(r.join("lobby", id(10), &Arc::from("alice")).first_of_user);
        assert!(!r.join("lobby", id(11), &Arc::from("alice")).first_of_user);
        let bob = r.join("lobby", id(12), &Arc::from("bob"));
        assert_eq!(bob.index, 2);
        assert_eq!(r.get("lobby").unwrap().users(), vec!["alice", "bob"]);
        // Alice's first connection leaves; Bob's moves into its index.
        let left = r.leave("lobby", 0, id(10), "alice");
        assert_eq!(
            left,
            Left {
                last_of_user: false,
                moved: Some(id(12))
            }
        );
        assert_eq!(r.get("lobby").unwrap().members, vec![id(12), id(11)]);
        let left = r.leave("lobby", 1, id(11), "alice");
        assert_eq!(
            left,
            Left {
                last_of_user: true,
                moved: None
            }
        );
        assert_eq!(r.get("lobby").unwrap().users(), vec!["bob"]);
        r.leave("lobby", 0, id(12), "bob");
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn rooms_are_separate() {
        let mut r = Rooms::default();
        r.join("a", id(1), &Arc::from("alice"));
        r.join("b", id(2), &Arc::from("alice"));
        assert_eq!(r.len(), 2);
        assert_eq!(r.get("a").unwrap().members, vec![id(1)]);
        assert!(r.leave("a", 0, id(1), "alice").last_of_user);
        assert_eq!(r.get("b").unwrap().users(), vec!["alice"]);
    }
}
