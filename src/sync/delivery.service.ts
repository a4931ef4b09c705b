/*
 * Live delivery lives in src/delivery/ now (FeedTailer, DeliveryService, the routing ports). This file
 * keeps the old import path working.
 */
export { AllJoinedRouter, CLUSTER_BUS, ChangeRouter, ClusterBus, JOINED_ROOM } from '../delivery/delivery.ports';
export type { Recipients } from '../delivery/delivery.ports';
export { DeliveryService, SLOW_CONSUMER } from '../delivery/delivery.service';
