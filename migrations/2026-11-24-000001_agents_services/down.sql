DROP TABLE presence_history;
DROP TABLE pause_reasons;
DROP TABLE agent_capacities;
DROP TABLE memberships;
DROP TABLE services;
DROP TABLE sessions;
DROP TABLE agents;
